from django.urls import path

from . import views

urlpatterns = [
    path("contacts/", views.contacts, name="contacts"),
    path("contacts/new/", views.contact_edit, name="contact-new"),
    path("contacts/<int:pk>/", views.contact_edit, name="contact"),
    path("products/", views.products, name="products"),
    path("products/new/", views.product_edit, name="product-new"),
    path("products/<int:pk>/", views.product_edit, name="product"),
    path("orders/", views.orders, name="orders"),
    path("orders/new/", views.order_new, name="order-new"),
    path("orders/<int:pk>/", views.order, name="order"),
    path("orders/<int:pk>/lines/", views.line_add, name="line-add"),
    path("orders/<int:pk>/lines/<int:line_pk>/delete/", views.line_delete, name="line-delete"),
    path("orders/<int:pk>/<str:action>/", views.order_transition, name="order-transition"),
]
