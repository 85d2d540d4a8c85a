"""Accounts (账号), roles scoped to an area (按辖区授权), and the append-only audit log (审计日志).

``scope`` is the one place where "who may see what" is defined; every layer filters its queries
through a :class:`layers.accounts.scope.Scope`. Nothing is re-exported here so that importing the
package never pulls in the models.
"""
