from django.urls import path

from . import views

urlpatterns = [
    path("contacts/", views.contacts, name="contacts"),
    path("contacts/new/", views.contact_edit, name="contact-new"),
    path("contacts/<id:pk>/", views.contact_edit, name="contact"),
    path("contacts/pick/", views.customer_pick, name="customer-pick"),
    path("products/", views.products, name="products"),
    path("products/new/", views.product_edit, name="product-new"),
    path("products/<id:pk>/", views.product_edit, name="product"),
    path("products/pick/", views.product_pick, name="product-pick"),
    path("orders/", views.orders, name="orders"),
    path("orders/new/", views.order_new, name="order-new"),
    path("orders/<id:pk>/", views.order, name="order"),
    path("orders/<id:pk>/edit/", views.order_edit, name="order-edit"),
    path("orders/<id:pk>/duplicate/", views.order_duplicate, name="order-duplicate"),
    path("orders/<id:pk>/lines/", views.line_add, name="line-add"),
    path("orders/<id:pk>/lines/<id:line_pk>/", views.line_edit, name="line-edit"),
    path("orders/<id:pk>/lines/<id:line_pk>/delete/", views.line_delete, name="line-delete"),
    path("orders/<id:pk>/pdf/", views.order_pdf, name="order-pdf"),
    path("orders/<id:pk>/<str:action>/", views.order_transition, name="order-transition"),
]

# Under /settings/: the company's details and tax table (administrators).
company_urlpatterns = [
    path("", views.company, name="company"),
    path("logo.png", views.company_logo, name="company-logo"),
    path("taxes/new/", views.tax_edit, name="tax-new"),
    path("taxes/<id:pk>/", views.tax_edit, name="tax"),
]
