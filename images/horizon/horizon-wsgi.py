# The dashboard's WSGI entry point where kolla-ansible's horizon.conf looks for it,
# <site-packages>/openstack_dashboard/wsgi.py, for images whose horizon comes from the distro's
# packages (Debian's keeps its own in /usr/share/openstack-dashboard). mod_wsgi reads
# `application`.
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openstack_dashboard.settings")
application = get_wsgi_application()
