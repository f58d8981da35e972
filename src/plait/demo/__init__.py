"""The demos: `runner.py` runs `plait demo` (generate data, train an embedded recipe, show what fusion buys), and the
`synthetic*.py` modules generate small datasets in the real layouts the readers in `plait.data` support (the demo
table with photos and notes, MELD clips, Flickr30k captions, pickled and .npy sequences, retrieval classes). Tests
and benchmarks use the same generators; nothing in `plait` below the verbs imports this package."""
