"""Checkpoints: the official Evo 2 layout read and written (official), the Hugging Face Hub (hub), and a
random-weight checkpoint in that layout to rehearse with (rehearsal)."""
