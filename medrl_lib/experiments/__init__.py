"""Layer 7, the experiments of the study: the profiles' arms (:mod:`.study`), one run trained and scored
(:mod:`.runs`), the results store (:mod:`.results`), and what the book shows: tables and figures (:mod:`.report`),
the computed conclusions (:mod:`.conclusions`), the protocol of each arm (:mod:`.protocol`), the transfer panel
(:mod:`.transfer`) and the papers' published numbers for reference columns (:mod:`.reference`). Imports the layers
below."""
