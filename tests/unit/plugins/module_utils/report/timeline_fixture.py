"""A disaster_recovery timeline as the role writes it: worker-new-03 lost power, its VM 106 was hard-stopped."""

TIMELINE = {'actor': 'tazlab-dr_recover', 'check_mode': False, 'timeline': [
    {'step': 'detect', 'node': '', 'wall_elapsed': 2.6, 'wall_time': '2026-12-02T20:55:29.1Z',
     'cluster_time': '2026-01-25T20:03:39Z', 'changed': False,
     'detail': {'remediate': ['worker-new-03'], 'reasons': {'worker-new-03': 'not_ready'}, 'refused': [],
                'pending': [], 'healthy': 6, 'unhealthy': 1, 'etcd': {'members': 3, 'up': 3, 'quorum': 2}}},
    {'step': 'claim', 'node': 'worker-new-03', 'wall_elapsed': 5.0, 'cluster_time': '2026-01-25T20:04:26Z',
     'changed': True, 'detail': ['create_lease', 'add_taint', 'cordon']},
    {'step': 'fence', 'node': 'worker-new-03', 'wall_elapsed': 7.5, 'cluster_time': None, 'changed': True,
     'detail': {'fenced': True, 'vmid': 106, 'pve_node': 'pve3', 'power_state_before': 'running',
                'power_state_after': 'stopped', 'upid': 'UPID:pve3:00001234:00000000:65B2A0F0:qmstop:106:x@pve!t:',
                'exitstatus': 'OK', 'elapsed': 2.4, 'smbios_uuid': '4c4c4544-0083-4d10-8051-b4c04f4e3833'}},
    {'step': 'free_and_verify', 'node': 'worker-new-03', 'wall_elapsed': 12.0, 'cluster_time': None,
     'changed': True,
     'detail': {'strategy': 'out_of_service', 'fallback': {'used': False}, 'finalizers_stripped': [],
                'volumes': [{'pvc': 'traefik/traefik', 'pv': 'pvc-1', 'ok': True, 'ok_at': 2.1,
                             'node': 'worker-new-04', 'robustness': 'degraded', 'state': 'attached'}],
                'workloads': [{'kind': 'Deployment', 'namespace': 'traefik', 'name': 'traefik', 'ok': True,
                               'ok_at': 3.5, 'desired': 1, 'ready': 1}]}},
]}
PLAN = {'remediate': [{'name': 'worker-new-03', 'ready_since': '2026-01-25T20:02:59Z'}]}
FAULTS = {'worker-new-03': '2026-01-25T20:02:19Z'}
