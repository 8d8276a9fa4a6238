"""evo2kit: learn and run the Evo 2 DNA language model, step by step, on any machine.

The package is built in floors; a module imports only from its own floor or those below it:

    files, cli, distributed   content hashes, atomic writes, exit codes, torch.distributed
    model/                    StripedHyena 2: the model, its inference state, FP8, tokenizer, a plain reference
    data/                     the dataset registry, FASTA, BRCA1, your variants (VCF/tables), training windows
    checkpoints/              the official checkpoint layout, the Hugging Face Hub, a rehearsal checkpoint,
                              Evo 2's own self-test (is my model right?)
    api                       Evo2Model and load_model (this face)
    analysis/                 embeddings and their store, prefix-shared passes, zero-shot, statistics, probes,
                              long sequences, variant effect prediction
    training/                 pre-training the bundled model, training stability, fine-tuning
    tutorial/                 what only the notebooks use: their context, metrics, plots, the runner, the site
"""

__version__ = "0.1.0"

from evo2kit.api import Evo2Model, load_model  # noqa: E402
from evo2kit.checkpoints.self_test import self_test  # noqa: E402
from evo2kit.model.striped_hyena import Evo2Config, StripedHyena2  # noqa: E402

__all__ = ["Evo2Config", "Evo2Model", "StripedHyena2", "load_model", "self_test", "__version__"]
