from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person of one tenant (in that tenant's database) or platform staff (catalog).

    A custom model from day one, so that identity features can grow without a swap.
    """

    class Meta:
        db_table = "accounts_user"
