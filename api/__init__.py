"""FastTTS HTTP server: ``create_app`` builds the FastAPI app; ``serve`` runs it (``fasttts serve``)."""
