"""`tunesmith serve`: OpenAI's files, fine-tuning and chat endpoints over tunesmith's engine."""
