"""`python -m bench services`: three services of one repository, a one-line change to the
package they share, built by each side (bench/services/run.py)."""
