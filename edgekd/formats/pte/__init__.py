"""ExecuTorch: `.pte` programs exported from the student (the `executorch` extra), run on the host by ExecuTorch's
own runtime, with the memory plan its compiler wrote into the program."""
