"""Errors raised by the learners package.

Every error is a ``ValueError`` subclass so callers that only know the standard library still
catch bad input; the service maps them to 4xx answers in one place.
"""


class LearnerError(ValueError):
    """Base class of every error the learners raise for bad input."""


class SpecError(LearnerError):
    """A policy spec string could not be parsed or names unknown parameters."""


class FeatureError(LearnerError):
    """A context or action carries a feature value the featurizer cannot represent."""


class ActionError(LearnerError):
    """The candidate actions are empty, duplicated, or do not contain the named action."""


class ModelFormatError(LearnerError):
    """Bytes given to ``Policy.load`` are not a model saved by this library or its policy."""
