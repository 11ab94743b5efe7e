"""Subject tests (`send ISSUE --test-subjects A --test-subjects B`): each subject to an equal
random share of a sample, the winner, judged by people, to the rest of the segment.

- store.py: the test and its sample in the database, one conditional update per step, and
  `refuse_beside_test()` (no other send of the issue while a test is open);
- decide.py: the decision and its significance note (two-proportion test);
- run.py: `propose()`, `advance()` (each send to run, each step) and `cancel_test()`.
"""
