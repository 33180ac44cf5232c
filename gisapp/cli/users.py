"""``gisapp users``: manage staff accounts from the command line."""

from __future__ import annotations

import click

from gisapp.accounts import ROLES, AccountError, Accounts
from gisapp.cli.context import Context, pass_ctx


def _accounts(ctx: Context) -> Accounts:
    return Accounts(ctx.config["ACCOUNTS"])


def _run(action):
    try:
        return action()
    except AccountError as err:
        raise click.ClickException(str(err)) from None


@click.group()
def users():
    """Staff accounts: add, remove, list, set-role, set-password, sign-out."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True, help="Role of the account.")
@click.password_option(help="Password (asked for when not given).")
@pass_ctx
def add(ctx: Context, username, role, password):
    """Create an account."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.add(username, password, role))
    accounts.audit(None, "user added", detail=f"{username} ({role}) from the command line")
    click.echo(f"added {username} ({role})")


@users.command("remove")
@click.argument("username")
@pass_ctx
def remove(ctx: Context, username):
    """Delete an account (its sessions end)."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.remove(username))
    accounts.audit(None, "user removed", detail=username)
    click.echo(f"removed {username}")


@users.command("list")
@pass_ctx
def list_(ctx: Context):
    """List accounts and their roles."""
    for user in _accounts(ctx).list():
        click.echo(f"{user.username}\t{user.role}")


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@pass_ctx
def set_role(ctx: Context, username, role):
    """Change an account's role (its sessions end)."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.set_role(username, role))
    accounts.audit(None, "role changed", detail=f"{username} → {role}")
    click.echo(f"{username} is now {role}")


@users.command("set-password")
@click.argument("username")
@click.password_option(help="New password (asked for when not given).")
@pass_ctx
def set_password(ctx: Context, username, password):
    """Change an account's password (its sessions end)."""
    accounts = _accounts(ctx)
    _run(lambda: accounts.set_password(username, password))
    accounts.audit(None, "password changed", detail=username)
    click.echo(f"password of {username} changed")


@users.command("sign-out")
@click.argument("username")
@pass_ctx
def sign_out(ctx: Context, username):
    """End every session of an account at once (a lost laptop, a copied cookie)."""
    accounts = _accounts(ctx)
    ended = _run(lambda: accounts.sign_out_everywhere(username))
    accounts.audit(None, "signed out everywhere", detail=f"{username} from the command line")
    click.echo(f"{ended} sessions of {username} ended")
