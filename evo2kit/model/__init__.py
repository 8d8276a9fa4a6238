"""StripedHyena 2, the architecture of Evo 2: the model (striped_hyena), its inference state (state), FP8 layers
(fp8), the byte tokenizer (tokenizer), batched cached sampling (sampling), and a plain reference of the Hyena
operators to test against (reference). Nothing here imports from the rest of evo2kit."""
