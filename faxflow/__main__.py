from faxflow.cli import main

main()
