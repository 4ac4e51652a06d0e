"""What the self-tests are made with, apart from the test modules: broken models (`graph_edits`, `slowdown`,
`helpers`), other tools' folders made by their own code (`optimum`, `transformersjs`, `immich`, and
`producer_folders`, also `python -m tests.support.producer_folders` for CI), and CI's skip allow-list (`skiplist`)."""
