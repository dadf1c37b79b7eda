"""`python -m cmnet_keras.ablation`: runs the command `cmnet_keras.commands.ablation`."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("cmnet_keras.commands.ablation", run_name="__main__", alter_sys=True)
