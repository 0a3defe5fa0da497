from premium_billing.cli import main

main()
