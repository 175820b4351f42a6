"""The course's own parts: code that exists for the chapters, not for training or using a PRM.

* ``exercises``: the checks of the chapters' code exercises (``check("6.1", your_function)``);
* ``joined_text``: the naive tutorial's method (steps joined into one text and searched for ``"\\n"``),
  kept to measure where it fails (chapters 2 and 5);
* ``ablation``: the loss variants of chapter 4, each trained once and measured on held-out solutions;
* ``probe``: a linear probe on a frozen backbone's hidden states, the baseline chapter 5 compares training with;
* ``checks``: which preset a chapter's hidden checks were measured on, so another preset skips them;
* ``diagrams``: the drawn diagrams of chapters 1, 2 and 5 (the course map, the read-outs, the surprise reader);
* ``models``: the course's nine trained models, which ``make models`` trains before anything needs them.

A practitioner needs none of them; ``prm_lib`` itself never imports them.
"""
