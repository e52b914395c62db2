-- 0003: where a run's pid is meaningful.
--
-- A pid alone names a process only inside one PID namespace of one boot of
-- one machine: a trainer in a container records pid 1, which on the host is
-- init. owner is the identity of the process that recorded pid and
-- pid_start ("host=... pidns=pid:[...] boot=..."; see ownerIdentity in
-- proc.go). RecoverInterrupted judges by pid only the runs whose owner is
-- its own identity; it judges a run owned elsewhere by how long the run has
-- been silent. Runs recorded before this migration keep owner '' and are
-- judged by pid as before.

ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
