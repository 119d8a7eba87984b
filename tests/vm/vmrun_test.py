#!/usr/bin/python3
"""Unit tests of the guest runner's host side (tests/vm/vmrun.py): directives, group topology
merging, blkdebug rules. No QEMU needed."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import vmrun  # noqa: E402


def scenario(text):
    f = tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False)
    f.write(text)
    f.close()
    return f.name


class Directives(unittest.TestCase):
    def test_group_and_media_error_keys(self):
        p = scenario("#!/bin/bash\n# vm-nvme: ctrl=0 nsid=1 size=64M lbs=4096 read_error_lba=10:20\n"
                     "# vm-group: nvme_x\n# vm-timeout: 90\n")
        nvme, lio, timeout, require, group = vmrun.parse_directives(p)
        self.assertEqual(group, "nvme_x")
        self.assertEqual(timeout, 90)
        self.assertEqual(nvme[0]["read_error_lba"], "10:20")
        self.assertEqual(nvme[0]["lbs"], 4096)

    def test_bad_values_are_errors(self):
        for bad in ("# vm-group: Bad-Name\n", "# vm-nvme: ctrl=0 nsid=1 size=1M read_error_lba=1,2\n",
                    "# vm-nvme: ctrl=0 nsid=1 size=1M bogus=1\n", "# vm-frobnicate: x\n"):
            with self.assertRaises(vmrun.DirectiveError, msg=bad):
                vmrun.parse_directives(scenario(bad))


class Boots(unittest.TestCase):
    def test_boots_directive(self):
        self.assertEqual(vmrun.parse_boots(scenario("# vm-nvme: ctrl=0 nsid=1 size=1M\n")), 1)
        p = scenario("# vm-nvme: ctrl=0 nsid=1 size=1M\n# vm-boots: 2\n")
        self.assertEqual(vmrun.parse_boots(p), 2)
        vmrun.parse_directives(p)  # a known directive there too
        for bad in ("# vm-boots: 0\n", "# vm-boots: 9\n", "# vm-boots: two\n"):
            with self.assertRaises(vmrun.DirectiveError, msg=bad):
                vmrun.parse_boots(scenario(bad))
            with self.assertRaises(vmrun.DirectiveError, msg=bad):
                vmrun.parse_directives(scenario(bad))

    def test_share_tells_the_guest_which_boot(self):
        d = tempfile.mkdtemp()
        vmrun.write_share(d, "/x/guest.sh", [], {}, "/", [{"name": "s", "timeout": 9, "path": "/s.sh"}], [], [], 2, 3)
        with open(os.path.join(d, "job.env")) as f:
            self.assertIn("export VM_BOOT=2 VM_BOOTS=3\n", f.read())


class Merge(unittest.TestCase):
    def parts(self, *texts):
        out = []
        for t in texts:
            p = scenario(t)
            nvme, lio, *_ = vmrun.parse_directives(p)
            out.append((p, nvme, lio))
        return out

    def test_union_keeps_first_seen_order_and_identical_duplicates(self):
        parts = self.parts("# vm-nvme: ctrl=0 nsid=1 size=64M mssrl=128\n# vm-lio: name=lun0 size=8M\n",
                           "# vm-nvme: ctrl=0 nsid=1 size=64M mssrl=128\n# vm-nvme: ctrl=1 nsid=1 size=8M\n")
        nvme, lio = vmrun.merge_topologies(parts)
        self.assertEqual([(d["ctrl"], d["nsid"]) for d in nvme], [(0, 1), (1, 1)])
        self.assertEqual([d["name"] for d in lio], ["lun0"])

    def test_a_device_declared_differently_is_an_error(self):
        parts = self.parts("# vm-nvme: ctrl=0 nsid=1 size=64M mssrl=128\n",
                           "# vm-nvme: ctrl=0 nsid=1 size=64M mssrl=64\n")
        with self.assertRaisesRegex(vmrun.DirectiveError, "ctrl=0 nsid=1 differs"):
            vmrun.merge_topologies(parts)
        parts = self.parts("# vm-lio: name=lun0 size=8M\n", "# vm-lio: name=lun0 size=16M\n")
        with self.assertRaisesRegex(vmrun.DirectiveError, "LUN lun0 differs"):
            vmrun.merge_topologies(parts)


class Blkdebug(unittest.TestCase):
    def test_rules_name_the_first_512_byte_sector_of_each_lba(self):
        rules = vmrun.blkdebug_rules({"lbs": 4096, "read_error_lba": "10:20", "write_error_lba": "5"})
        self.assertEqual(rules.count("[inject-error]"), 3)
        self.assertIn('event = "read_aio"\niotype = "read"\nerrno = "5"\nsector = "80"\nonce = "off"', rules)
        self.assertIn('sector = "160"', rules)
        self.assertIn('event = "write_aio"\niotype = "write"\nerrno = "5"\nsector = "40"', rules)
        self.assertEqual(vmrun.blkdebug_rules({"lbs": 512}), "")


if __name__ == "__main__":
    unittest.main()
