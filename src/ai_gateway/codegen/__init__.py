"""The code-generation flow (`POST /ai/code/generate`): its prompt, and its answer as files."""
