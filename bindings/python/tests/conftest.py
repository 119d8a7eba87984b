import offcopy


def pytest_report_header(config):
    # Which module ran: the build tree's (PYTHONPATH) and not an installed copy.
    return f"offcopy {offcopy.__version__} from {offcopy.__file__}"
