"""Analysis on a loaded model: prefix-shared passes (prefix), embeddings (embeddings) in a resumable store
(store; command line embed_cli), zero-shot variant scores (zero_shot), statistics (stats), probes (probes),
long sequences (longseq), variant effect prediction for your own variants (vep), judging generated DNA
(generation) and Evo 2's gene-completion benchmark (gene_completion)."""
