"""Progress bars: tqdm's widget bar in Jupyter when ipywidgets is installed, its text bar elsewhere."""

import warnings


def progress_bar(*args, **kwargs):
    """``tqdm.auto.tqdm(*args, **kwargs)``.

    tqdm warns once when a notebook lacks ipywidgets; it then falls back to the text bar, which
    is fine here, so the warning is not passed on to the user.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm(*args, **kwargs)
