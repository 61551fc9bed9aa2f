"""Kamailio BINRPC: a sans-IO codec, address parsing and an asyncio client."""
