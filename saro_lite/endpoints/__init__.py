"""Chat endpoints: the OpenAI-compatible / local client (client.py) and its reply cache (cache.py)."""
