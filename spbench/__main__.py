from spbench.cli import main

main()
