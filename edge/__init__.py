"""The HTTP edge served by Granian (RSGI): `granian --interface rsgi edge.app:app`."""
