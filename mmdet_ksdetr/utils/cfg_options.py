"""``--cfg-options`` of every tool: mmengine's ``DictAction`` (``key=value``, lists
``a,b`` / ``[a,b]``, tuples ``(a,b)``, nested keys ``a.b.c=v``) with a one-line error where it
would crash or silently take the text as a string."""
from mmengine.config import DictAction

__all__ = ['CfgOptionsAction']


class CfgOptionsAction(DictAction):
    """``DictAction`` that refuses what it cannot parse with one argparse error line:

    * ``key=dict(...)`` / ``key={...}``: mmengine recurses until Python's recursion limit on
      a ``dict(...)`` value; set the keys one by one (``train_cfg.max_epochs=1``);
    * an item without ``=``, or an empty key.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, sep, value = item.partition('=')
            if not sep or not key:
                parser.error(f'{option_string} {item!r}: expected key=value (e.g. '
                             f'train_cfg.max_epochs=1)')
            if value.lstrip().startswith(('dict(', '{')):
                parser.error(f'{option_string} {key}={value}: dict values are not supported; '
                             f'set each key on its own, e.g. {key}.KEY=VALUE')
        try:
            super().__call__(parser, namespace, values, option_string)
        except RecursionError:
            parser.error(f'{option_string}: cannot parse {" ".join(values)!r} (unbalanced '
                         f'brackets or quotes?)')
