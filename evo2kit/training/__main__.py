from evo2kit.training.train import main

main()
