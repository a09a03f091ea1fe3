"""Forms for the pages: what a person may type, checked before any service is called."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.utils import timezone

from billing.models import Model
from workspaces.models import ApiKey, Workspace

MAX_USAGE_DAYS = 366


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def _model_choices(*, active_only: bool = False) -> list[tuple[str, str]]:
    models = Model.objects.filter(is_active=True) if active_only else Model.objects.all()
    return [(slug, f"{name} ({slug})") for slug, name in models.order_by("slug").values_list("slug", "name")]


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=ApiKey._meta.get_field("name").max_length,
        help_text="Shown in lists; one active key per name.",
    )
    scope = forms.ChoiceField(
        choices=ApiKey.Scope.choices,
        initial=ApiKey.Scope.INFERENCE,
        widget=forms.RadioSelect,
        help_text="Inference keys call models; management keys call the management API.",
    )
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key stops working at the end of this day (UTC).",
    )
    allowed_models = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: the key may call every model.",
    )

    def __init__(self, *args, may_issue_admin_keys: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["allowed_models"].choices = _model_choices(active_only=True)
        if not may_issue_admin_keys:
            # Management keys act with an owner's rights: only owners issue them (workspaces/access.py).
            field = self.fields["scope"]
            field.choices = [(ApiKey.Scope.INFERENCE, ApiKey.Scope.INFERENCE.label)]
            field.help_text = "Inference keys call models. Only owners create management API keys."

    def clean_expires_on(self) -> date | None:
        day = self.cleaned_data.get("expires_on")
        if day is not None and day < today():
            raise forms.ValidationError("This day is already over: pick today or a later day.")
        return day

    @property
    def expires_at(self) -> datetime | None:
        """The end of the chosen day (UTC), i.e. midnight of the next one."""
        day = self.cleaned_data.get("expires_on")
        return None if day is None else datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


class UsageFilterForm(forms.Form):
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    model = forms.ChoiceField(required=False)
    key = forms.ModelChoiceField(queryset=ApiKey.objects.none(), required=False, empty_label="All keys")
    metric = forms.ChoiceField(
        label="Chart",
        required=False,
        choices=[("cost", "Cost"), ("requests", "Requests"), ("tokens", "Tokens")],
    )

    def __init__(self, *args, workspace: Workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "All models"), *_model_choices()]
        # Only this workspace's keys: another workspace's key id is "not one of the choices".
        self.fields["key"].queryset = ApiKey.objects.filter(workspace=workspace).order_by("name", "-created_at")
        self.fields["key"].label_from_instance = lambda key: (
            f"{key.name} ({key.prefix}…)" + ("" if key.revoked_at is None else ", revoked")
        )

    def clean(self) -> dict:
        data = super().clean()
        end = data.get("end") or today()
        start = data.get("start") or end.replace(day=1)
        if start > end:
            raise forms.ValidationError("“From” must not be after “To”.")
        if (end - start).days + 1 > MAX_USAGE_DAYS:
            raise forms.ValidationError(f"Pick at most {MAX_USAGE_DAYS} days.")
        data["start"], data["end"] = start, end
        data["metric"] = data.get("metric") or "cost"
        return data
