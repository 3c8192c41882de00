from faxflow.simulator import main

main()
