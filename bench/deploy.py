# pyinfra: the same two operations as bench/roles/bench_converge.
from pyinfra.operations import apt, systemd

apt.packages(name="Install the benchmark service", packages=["gafix-benchsvc"], _sudo=True)
systemd.service(name="Enable and start the benchmark service", service="gafix-benchsvc", running=True, enabled=True, _sudo=True)
