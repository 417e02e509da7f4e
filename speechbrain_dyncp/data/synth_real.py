"""Optional real recordings added to the embedded corpus (see ``build_corpus(shared_data=...)``)."""


def add_shared_data(corpus, shared_data):
    return {}
