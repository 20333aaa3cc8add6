"""The quickstart chain: a -> b -> c in namespace ``demo``. Each asset says hello in its logs."""

from servo import asset


@asset(namespace="demo")
def a(ctx):
    """The first link: runs alone when you `servo run demo.a`."""
    print("A says hello")
    return {"row_count": 1}


@asset(namespace="demo", deps=[a])
def b(ctx):
    """Runs after a, with `--include-downstream`."""
    print(f"B says hello (a reported {ctx.upstream.get('demo.a', {})})")
    return {"row_count": 2}


@asset(namespace="demo", deps=[b])
def c(ctx):
    """The end of the chain."""
    print("C says hello")
    return {"row_count": 3}
