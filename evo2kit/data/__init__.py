"""Data: the registry of datasets and their verified fetch (registry), FASTA (fasta), the BRCA1 variants (brca1),
their windows (windows), your own variants from VCFs and tables with a genome (variants), and training windows
(genome_windows). ``python -m evo2kit.data`` checks every dataset."""
