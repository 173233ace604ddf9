from custody import tasks
from custody.demo import seed_demo
from custody.models import Broker, ChainDeployment, Security, TokenProduct
from custody.selectors import products_with_reserves


def test_seed_demo_is_idempotent(db):
    seed_demo()
    seed_demo()
    tickers = ["TSLA", "AAPL", "NVDA", "AMZN", "SPY", "CRCL"]
    assert Security.objects.filter(ticker__in=tickers).count() == Security.objects.count() == 6
    assert TokenProduct.objects.filter(symbol__in=[f"{t}x" for t in tickers]).count() == 6
    # On every demo chain (settings.DEMO_CHAINS), with the decimals of its kind of chain.
    assert set(ChainDeployment.objects.filter(product__symbol="AAPLx").values_list("chain", "decimals")) == {
        ("ethereum", 18), ("base", 18), ("solana", 9)}
    assert Broker.objects.get(code="sim").sim_prices.count() == Security.objects.count()
    assert all(row.reserves.coverage is None for row in products_with_reserves())


def test_tasks_run_against_demo_data(db):
    seed_demo()
    assert tasks.sync_open_orders() == 0
    assert tasks.settle_due_fills() == 0
    assert isinstance(tasks.reconcile(), int)
