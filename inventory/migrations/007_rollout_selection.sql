-- Partial rollouts: the machines an operator picked for a rollout, as
-- shown to operators ("rack=r12", "machines=lab-w1,lab-w2"); '' is the
-- whole site. The plan in rollout_machines holds only the picked machines;
-- this records why.
ALTER TABLE rollouts ADD COLUMN selection TEXT NOT NULL DEFAULT '';
