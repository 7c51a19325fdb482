"""Fine-tuning jobs as OpenAI's API knows them: the records (models), where they are kept
(store) and the process that runs them (worker)."""
