from rsr.commands import cli

if __name__ == "__main__":
    cli(prog_name="rsr")
