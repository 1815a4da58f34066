"""The OpenAI-compatible HTTP layer; `inference.api.app.create_app` builds it."""
