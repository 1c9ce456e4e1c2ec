"""The model: the decoder-only transformer, its parameter and FLOP accounting, Hugging Face import
and export."""
