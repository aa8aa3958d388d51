"""A config applied in try mode is confirmed by the next non-try apply (machined cancels the rollback)."""

from __future__ import annotations

import asyncio

from talos_lab_helpers import auth_for, talos_lab

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient


def test_a_no_reboot_apply_confirms_a_try_apply_and_cancels_its_rollback():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            async with TalosClient(auth_for(twin), timeout=10, connect_timeout=2, retries=1) as c:
                before = await c.machine_config(node=addrs[1])
                new = tp.dump_documents(tp.apply_patches(before, [{"machine": {"nodeLabels": {"try": "me"}}}])).encode()
                t0 = clock.now()
                await c.apply_configuration(new, mode="try", try_timeout=60, node=addrs[1])
                await c.apply_configuration(new, mode="no_reboot", node=addrs[1])
                assert await c.machine_config(node=addrs[1], rid="persistent") == new
                while clock.now() - t0 < 90:
                    await asyncio.sleep(0.02)
                assert await c.machine_config(node=addrs[1]) == new      # not rolled back
    asyncio.run(main())
