"""How much time DVC itself spends per grid stage, on the real stage definitions at paper size
(backdoor/pipeline/bookkeeping.py).

    python benchmarks/dvc_bookkeeping.py [--params presets/paper.yaml] [--compare 150]
"""

from backdoor.pipeline.bookkeeping import main

if __name__ == "__main__":
    main()
