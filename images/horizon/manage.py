#!/usr/bin/env python3
# Django's management commands for the dashboard (collectstatic, compress, migrate), where kolla's
# images have them: /var/lib/kolla/venv/bin/manage.py, run by the image's extend_start.
import os
import sys

from django.core.management import execute_from_command_line

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openstack_dashboard.settings")
    execute_from_command_line(sys.argv)
