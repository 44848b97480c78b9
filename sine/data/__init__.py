"""Interaction logs: reading, item vocabulary, the leave-one-out split, synthetic logs."""

from sine.data.logs import LogColumns, read_log
from sine.data.split import SplitData, leave_one_out
from sine.data.vocabulary import ItemVocabulary

__all__ = ["ItemVocabulary", "LogColumns", "SplitData", "leave_one_out", "read_log"]
