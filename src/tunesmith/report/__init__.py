"""The decision: run the approaches, price them, recommend one, and write the report."""
