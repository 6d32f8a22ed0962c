"""Layer 8, operations at the paper's scale: checks before any GPU hour (:mod:`.preflight`, :mod:`.memory`), the
cost of a study (:mod:`.estimate`), the rehearsal of the paper profile on CPU stand-ins (:mod:`.rehearsal`), the
study as a list of independent runs (:mod:`.runlist`) and its submission to a cluster's scheduler
(:mod:`.scheduler`). Imports the layers below."""
