# The image docker-compose.yaml builds: the official Airflow image plus safeload, with
# exactly the versions the tests ran against (requirements.txt, pinned by constraints.txt).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml README.md /opt/safeload/
COPY --chown=airflow:0 plugins /opt/safeload/plugins
RUN pip install --no-cache-dir -r /opt/safeload/requirements.txt -c /opt/safeload/constraints.txt \
 && pip install --no-cache-dir --no-deps /opt/safeload
