from django.urls import path

from . import views

urlpatterns = [
    path("portal/order/", views.order_page, name="portal-order"),
    path("portal/order/pdf/", views.order_pdf, name="portal-order-pdf"),
    path("sales/orders/<id:pk>/email/", views.send_link, name="order-email"),
    path("sales/orders/<id:pk>/revoke-links/", views.revoke_link, name="order-revoke-links"),
]
