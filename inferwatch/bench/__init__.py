"""`inferwatch bench`: a load generator for any OpenAI-compatible base URL (this service,
vLLM, another), measuring what users feel per priority class."""
