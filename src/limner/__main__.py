from limner.cli.app import main

main()
