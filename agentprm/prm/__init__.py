"""The PRM M_phi(s_t, a_t), owned in one place (no torch-free code here):

  value.py    the value model: a backbone + scalar head (an HF token-classification model), built
              from a preset or loaded from a folder; values read per token
  batch.py    trajectories -> training segments -> padded batches; step_values / score_encoded read
              M_0..M_T (and Q_{-1}) at the positions of prompts.readout_index, the one readout rule
  scorers.py  scoring for search: PRMScorer (shared-prefix KV cache) and an oracle for tests
  labels.py   pure label functions: orm, pvm, mc, td_gae (TD(lambda) + GAE from current values)
  losses.py   L_Q, L_A and prm_loss = L_Q + beta L_A (the loss train-prm optimises)

Diagnostics (agentprm.diagnostics) only measure; recipes/train_prm.py trains; search.py searches.
"""
